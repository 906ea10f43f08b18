"""Test support: local servers (AWS, Slack, MLflow), fakes for every port, builders, harnesses."""
