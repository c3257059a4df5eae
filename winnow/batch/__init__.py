"""Provider batch APIs: the engine's planned calls sent as 24-hour batches at half the price.

``submit`` starts a job for a ``rate`` call, ``collect`` resumes one, ``cancel`` stops one;
``winnow rate --batch`` and ``winnow batch status|collect|cancel`` are the CLI.  See driver.py.
"""
