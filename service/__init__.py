"""Descent's HTTP service: FastAPI over the NumPy engine.

``service.app.create_app`` builds the application; ``descent serve`` runs it with uvicorn.
"""
