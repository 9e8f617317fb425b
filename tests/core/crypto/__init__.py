"""Tests of covey.core.crypto: Fernet and the keyring."""
