"""Messages to partners, staff and patients, written to the outbox with the change."""
