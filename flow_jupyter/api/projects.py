"""(being written)"""
default_handlers: list[tuple] = []
