# syntax=docker/dockerfile:1

# Build stage: the toolchain named in go.mod, modules cached as their own layer.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/lockd ./cmd/lockd

# Final stage: a static binary on distroless (CA certificates and tzdata, no
# shell, no toolchain), running as an unprivileged user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/lockd /lockd
USER nonroot:nonroot
ENV GIN_MODE=release PORT=8080
EXPOSE 8080
# No shell or curl here: the binary asks its own /readyz (exec form).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["/lockd", "healthcheck"]
ENTRYPOINT ["/lockd"]
