"""Pydantic request and response models; they are also the OpenAPI document's schemas."""
