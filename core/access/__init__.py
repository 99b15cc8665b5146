"""Who is acting (`Actor`), what they may do (`Permission`), and the use-case frame every entry point
calls through (`use_case`, `unit_of_work`). See docs/architecture.md."""
