"""Tests of the foundation: events, Stream, fused operators, bridges (sync, reactivex)."""
