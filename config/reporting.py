"""What the DEBUG error page shows of the settings.

Django's own filter hides settings named like secrets (…KEY, …TOKEN, …PASSWORD). Some secrets
hide in values instead: the password inside REDIS_URL (and the cache's LOCATION, the Redis
pool's repr), and the alert webhook's URL, whose path is the secret.
"""

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

# user:password@ in a URL (redis://:password@host, smtp://user:password@host).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/@\s:]*:)[^/@\s]+@", re.IGNORECASE)
# password=... in a client library's repr (redis-py's connection pool).
_REPR_PASSWORD = re.compile(r"(?P<head>\bpassword=)[^,)>\s]+")


class SecretsHiddenFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        SafeExceptionReporterFilter.hidden_settings.pattern + "|WEBHOOK", flags=re.IGNORECASE
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, (dict, list, tuple, int, float, type(None))):
            return cleansed  # containers were cleansed item by item; numbers hold no secret
        text = str(cleansed) if isinstance(cleansed, str) else repr(cleansed)
        masked = _URL_PASSWORD.sub(rf"\g<head>{self.cleansed_substitute}@", text)
        masked = _REPR_PASSWORD.sub(rf"\g<head>{self.cleansed_substitute}", masked)
        return cleansed if masked == text else masked
