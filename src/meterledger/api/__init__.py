"""The FastAPI application factory, a composition root."""
