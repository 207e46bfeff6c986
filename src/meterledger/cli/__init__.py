"""The typer command line, a composition root: only it (and api/) wires everything."""
