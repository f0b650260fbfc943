"""Layer 1, core.

Errors, feedback (progress, logs, cancel), the job's temporary folder, versions, the compute
device and small numeric helpers. Imports nothing else of the engine.
"""
