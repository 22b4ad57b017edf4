"""appworld-lite: an offline, deterministic AppWorld-style environment (9 apps, SQLite state, 30+ task templates)."""

from . import templates  # noqa: F401  (registers every task template)
from .env import SYSTEM_PROMPT, TOOLS, AppWorldLite, TaskInstance
from .scripted import ScriptedAgent
from .tasks import TEMPLATES, EvalResult, TaskTemplate, evaluate

__all__ = ["AppWorldLite", "EvalResult", "ScriptedAgent", "SYSTEM_PROMPT", "TEMPLATES", "TOOLS", "TaskInstance",
           "TaskTemplate", "evaluate"]
