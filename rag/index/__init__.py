"""The index: a vector-store backend (FAISS or Milvus) plus the generation's SQLite records and manifest."""
