"""CPython's own asyncio test suite, run against a chosen event loop.

``test.test_asyncio`` ships with CPython (not with Debian's python3, which splits it out). Many of
its test classes are written once as mixins and bound to a loop by a ``create_event_loop()`` or
``new_loop()`` method, or pick the loop through the event loop policy. This package binds those
families to the loop named by ``REACTOR_AIO_LOOP`` and runs them.

Read in this order: ``loops`` (which loop), ``families`` (which tests, bound to it), ``guard``
(each test bounded in time, results as JSON lines), ``run`` (one family in this process, or the
table for all), ``supervise`` (a family in a child process with an outer deadline),
``expected_failures`` (the one list of tests our loop is allowed to fail, with reasons).

Only the standard library is used, so that every installed Python can run it, pytest or not.
"""
