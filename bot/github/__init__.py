"""GitHub access: App auth, the API client, check runs and sticky comments."""
