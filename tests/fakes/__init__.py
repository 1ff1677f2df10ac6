"""Loopback fakes of platform APIs, speaking their real wire formats."""
