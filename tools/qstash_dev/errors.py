"""ApiError: an answer other than success, with its HTTP status, message
(sent as {"error": "..."}) and extra headers.  Raised anywhere below the
HTTP front, which turns it into the response."""


class ApiError(Exception):
    def __init__(self, status, message, headers=None):
        Exception.__init__(self, message)
        self.status = status
        self.message = message
        self.headers = headers or []
