"""Partners, users, service lines and the audit log."""
