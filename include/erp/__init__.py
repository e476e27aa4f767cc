"""Sample ERP data of Northwind Components Ltd and the tools LLM agents may call on it."""

from pathlib import Path

PROMPTS = Path(__file__).resolve().parent / "prompts"
"""The ERP agents' prompt files (also the last folder on the spec loader's prompt_file search path)."""
