"""Report renderers: JSON (reports/schema.json), CSV and self-contained HTML (Jinja2)."""
