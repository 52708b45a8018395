"""Personal-data rights under PIPL (issue 23): consent to a versioned privacy notice, the
export of everything held about a user, erasure, retention, and the audit of reads.

Imports only storage and shared parts: feature packages register what they hold about a
user here (``registry``), not the other way round.
"""
