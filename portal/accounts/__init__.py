"""Sign-in, sign-out, invitations, roles and session rules."""
