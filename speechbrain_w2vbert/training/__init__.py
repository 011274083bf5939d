"""What the recipe's training loop uses beside SpeechBrain: per-step
seeding, counters, the fault-tolerant audio reader, learning-rate schedules,
the training curves, and what lets a run survive being killed (atomic
checkpoints, a clean stop on SIGTERM/SIGUSR1, exit statuses) and notice a
collapse to blanks."""


from speechbrain_w2vbert.compat import legacy_attribute


def __getattr__(name):
    """The names this module had in 0.1.x (see :mod:`speechbrain_w2vbert.compat`)."""
    return legacy_attribute(__name__, name)
