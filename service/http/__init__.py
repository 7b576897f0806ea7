"""The HTTP layer: routers, request and response schemas, media types, problem+json, middleware."""
