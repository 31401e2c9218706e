"""Real servers on loopback for integration tests: XRootD, nginx, moto (S3) and a ServiceX stand-in."""
