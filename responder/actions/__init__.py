"""Actions: the side effects playbooks may take, each registered by name with a typed parameter model."""
