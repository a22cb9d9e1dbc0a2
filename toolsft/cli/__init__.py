"""Thin click commands: options -> config -> one library call -> rich output."""
