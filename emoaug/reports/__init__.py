"""Renderers: turn stored result frames into tables and figures. They never recompute metrics."""
