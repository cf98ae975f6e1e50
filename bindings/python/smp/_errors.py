"""The exception every smp call raises on failure."""


class SmpError(RuntimeError):
    """An smp call failed.

    ``status`` is the C API's ``smp_status_t`` (negative; see ``smp.Status``)
    and the message is ``smp_last_error()`` or the binding's own words for a
    bad argument (status ``SMP_ERR_INVALID_ARGUMENT``).
    """

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message

    def __reduce__(self):
        return (type(self), (self.status, self.message))

    def __str__(self):
        from . import Status  # late: smp/__init__ imports this module first
        try:
            name = Status(self.status).name
        except ValueError:
            name = str(self.status)
        return f"[{name}] {self.message}"
