"""``python -m bench peers``: Parley against LangGraph's server and Aegra, all serving one graph.

install.py (the peers' virtualenvs), graph.py (the graph they all serve), servers.py (starting, killing and
restarting each), clients.py (one interface over Parley's API and langgraph-sdk), workloads.py,
long_session.py, run.py (one run, end to end), report.py and plots.py (what it writes), main.py (options).
"""
