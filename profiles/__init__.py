"""Device profiles (YAML data, one file per family) and their JSON schema."""
