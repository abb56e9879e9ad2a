"""The provider's I/O internals: HTTP transport, downloads, storage, image headers, redaction and
the generation's record across tries. Not a public API."""
