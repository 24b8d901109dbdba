"""The `.kae` file of compressed codes (`kae`) and its adaptive range coder (`rangecoder`)."""
