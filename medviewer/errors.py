"""The one base class for errors a user can cause (bad file, wrong model, no GPU...).

Such an error carries one clear sentence naming the thing and the reason; the GUI and the
CLI show that sentence and never a traceback.
"""


class UserError(Exception):
    """An error the user can act on; ``str(error)`` is the sentence to show."""
