"""OCI distribution (Docker registry v2) format: image names, digests, manifests, errors."""
