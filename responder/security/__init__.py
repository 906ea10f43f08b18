"""Defences that every layer shares: masking secrets before anything is logged or stored."""
