"""Serving: checkpoint -> answers with clues (`Pipeline`), the answer contract, `mcd predict`, the out-of-domain
check, figures and the analysis of evaluation runs (everything the demo shows, without the UI)."""
