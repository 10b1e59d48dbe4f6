"""Protocol v1 as pure functions, shared by the server and the client: paths, frames, timestamps."""
