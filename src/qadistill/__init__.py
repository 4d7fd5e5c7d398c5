"""qadistill: knowledge distillation of LLMs for extractive question answering."""

__version__ = "0.1.0"
