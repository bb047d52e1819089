"""Quality figures on question sets, and the LangChain baseline they are compared with."""
