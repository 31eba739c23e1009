"""HTTP layer: thin views per dataset, plus operations endpoints."""
