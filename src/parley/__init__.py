"""Parley: a chatbot microservice — a LangGraph graph behind a FastAPI gateway."""

__version__ = "0.1.0"
