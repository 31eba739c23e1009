"""The shared query engine: parameters → Elasticsearch bodies → rows, all pure."""
