"""Tests of agent runs: the models an agent uses, tools, the agent loop."""
