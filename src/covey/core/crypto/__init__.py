"""Encryption: covey's Fernet tokens and the keyring that seals and opens frames."""
