"""The wire format: sealed frames, message arrays and their checked field codecs."""
