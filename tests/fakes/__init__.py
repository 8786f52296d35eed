"""Typed fakes with the real interfaces (never MagicMock): a RobotIO and a RobotState builder."""
