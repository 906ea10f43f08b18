"""SecurityEvent v1, the input contract: the model, its JSON Schema and the fast validator."""
