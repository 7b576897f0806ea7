"""The lab: a web page over the public API, and the offline API documentation (see ``routes``)."""

from service.lab.routes import install_lab

__all__ = ["install_lab"]
