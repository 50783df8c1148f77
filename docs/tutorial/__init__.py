"""The code of docs/write-your-own-protocol.md, shown there verbatim and run by its tests."""
