"""Harnesses the tests share: hubs and servers as child processes, fixtures data, polling."""
