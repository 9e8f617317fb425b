"""Sockets: the UDP/TCP transport and the choice of beacon interfaces."""
