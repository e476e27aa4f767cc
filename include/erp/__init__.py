"""Sample ERP data of Northwind Components Ltd and the tools LLM agents may call on it."""
