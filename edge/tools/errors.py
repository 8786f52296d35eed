"""What an operator command ends in, without heavy imports (the fast `edge estop` path imports this too).

Exit codes: 0 done; 1 not done (invalid, rejected, preempted, timed out, refused); 2 a usage or config mistake;
3 the stack is not running or not ready; 4 the robot's network interface is not up."""

from __future__ import annotations

EXIT_OK, EXIT_NOT_DONE, EXIT_USAGE, EXIT_NOT_READY, EXIT_NO_INTERFACE = 0, 1, 2, 3, 4


class OperatorError(RuntimeError):
    """A refused or failed operator command: one line for the user, and the exit code."""

    def __init__(self, message: str, code: int = EXIT_NOT_DONE):
        super().__init__(message)
        self.code = code
