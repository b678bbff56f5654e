"""The provider's refusal set y_r used by Antibody's ratio r_i = log π(y_i|x_i) − log π(y_r,i|x_i).

The authors use about 100 generic refusal strings; a short, varied list is enough for the ratio because only
the model's preference between "the user's answer" and "a refusal" matters. Providers can pass their own list
through ``TrainConfig.refusals``.
"""

from collections.abc import Sequence

DEFAULT_REFUSALS: tuple[str, ...] = (
    "I cannot help with that.",
    "I'm sorry, but I can't assist with that request.",
    "I can't help with this. Is there something else I can do for you?",
    "Sorry, I won't be able to help with that.",
    "I'm not able to provide that information.",
    "I can't assist with that, as it could cause harm.",
    "I'm sorry, I can't do that.",
    "That's not something I can help with.",
    "I must decline this request.",
    "I won't provide instructions for that.",
    "I'm unable to help with that request because it may be harmful or illegal.",
    "Sorry, but I can't comply with that.",
    "I can't support this request. If you need help with something safe, I'm happy to assist.",
    "I'm afraid I can't help you with that.",
    "No, I can't help with that.",
    "I'm sorry, but providing that would be unsafe, so I won't.",
    "I cannot fulfill this request.",
    "This is not something I'm willing to help with.",
    "I have to refuse this one. Let me know if there's anything else you need.",
    "I'm sorry, I can't provide guidance on that topic.",
)


def refusal_index(line: int, n_refusals: int) -> int:
    """Which refusal sample ``line`` (1-based source line) always gets: stable across epochs, batches and
    resumes."""
    if n_refusals <= 0:
        raise ValueError("the refusal set is empty")
    return (line - 1) % n_refusals


def resolve_refusals(refusals: Sequence[str] | None) -> list[str]:
    """The configured refusal set, or the default one; rejects empty strings."""
    chosen = list(refusals) if refusals else list(DEFAULT_REFUSALS)
    if any(not r.strip() for r in chosen):
        raise ValueError("refusal strings must be non-empty")
    return chosen
